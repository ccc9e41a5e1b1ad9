"""The Python peer: tuspyserver's FastAPI router as its README mounts it, under uvicorn.

Run by bench/peers.py from the peer's own venv (never the project's), as
``uvicorn tuspy_app:app``; the store directory and the size limit come from the
environment. The default local store (``storage=None``) writes each body piece to
``<files_dir>/<upload id>`` as it arrives; nothing is hashed or checked.
"""

import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(create_tus_router(
    prefix="files",
    files_dir=os.environ["TUS_FILES_DIR"],
    max_size=int(os.environ["TUS_MAX_SIZE"]),
    days_to_keep=1,
))


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
