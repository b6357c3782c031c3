import sys

from local.fm.cli import main

sys.exit(main())
