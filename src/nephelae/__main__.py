from nephelae.cli.main import main

main()
