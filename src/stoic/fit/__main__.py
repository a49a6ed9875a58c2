"""`python -m stoic.fit sign|verify ...`."""

from stoic.fit.cli import main

raise SystemExit(main())
