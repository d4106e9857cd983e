from madre.cli import main

main()
