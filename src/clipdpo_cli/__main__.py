from clipdpo_cli.cli import main

main()
