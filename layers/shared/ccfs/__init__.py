"""CC-FS (Huawei Cloud AICC file server) protocol: signing, models, client, bill files.

This package has no AWS imports: it is the vendor protocol only, usable outside Lambda.
"""
