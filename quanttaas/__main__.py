import sys

from quanttaas.cli import main

sys.exit(main())
