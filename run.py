"""`python run.py`: serve Madre on 127.0.0.1:8001 with SQLite at data/runtime/vx11.db.

Every setting comes from the environment (see README); `--host` and `--port` override.
"""

import sys

from madre.cli import main

if __name__ == "__main__":
    sys.argv[1:1] = ["serve"]
    main()
