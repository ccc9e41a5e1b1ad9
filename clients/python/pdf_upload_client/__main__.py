"""``python -m pdf_upload_client`` is ``pdf-upload``."""

import sys

from pdf_upload_client.cli import main

sys.exit(main())
