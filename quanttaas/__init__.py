"""The product's command, ``quanttaas``: above every floor, it puts each floor's own commands on one command line
(:mod:`quanttaas.cli`). Nothing below imports it."""
