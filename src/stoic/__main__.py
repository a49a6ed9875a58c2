from stoic.cli import main

raise SystemExit(main())
