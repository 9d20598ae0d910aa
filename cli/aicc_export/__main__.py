"""``python -m aicc_export``: the same as the ``aicc-export`` console script."""

from aicc_export.main import main

main()
