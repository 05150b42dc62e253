"""``python -m vidu_async``: the same as the ``vidu-async`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
