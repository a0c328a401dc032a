from m3code.cli import main

main()
