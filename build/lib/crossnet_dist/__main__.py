import sys

from crossnet_dist.cli import main

sys.exit(main())
