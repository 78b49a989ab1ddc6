from lftutor.cli import main

raise SystemExit(main())
