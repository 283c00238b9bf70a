from components.cli import main

main()
