from bci.cli import main

raise SystemExit(main())
