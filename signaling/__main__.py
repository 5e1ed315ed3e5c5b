from signaling.cli import main

raise SystemExit(main())
