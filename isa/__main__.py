from isa.cli import main

main()
