import sys

from edgelaw.cli import main

sys.exit(main())
