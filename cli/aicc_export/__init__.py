"""``aicc-export``: the operators' command line for a deployed (or ``make serve``) aicc-export stack."""
