from pt2kit.cli import main

raise SystemExit(main())
