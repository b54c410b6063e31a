"""Run rows of the combination test under torchrun (tests/test_combinations.py):
`torchrun --nproc_per_node=2 combo_run.py OUT_FOLDER ROWS_JSON`."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from combo import Row, write_rows  # noqa: E402

from cnnlab import distributed  # noqa: E402

distributed.setup()
rows = [Row(**row) for row in json.loads(Path(sys.argv[2]).read_text())]
write_rows(rows, Path(sys.argv[1]))
distributed.cleanup()
