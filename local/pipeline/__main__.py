import sys

from local.pipeline.cli import main

sys.exit(main())
