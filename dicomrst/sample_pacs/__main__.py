"""``python -m dicomrst.sample_pacs``: run the sample PACS."""

import sys

from dicomrst.sample_pacs.scp import main

sys.exit(main())
