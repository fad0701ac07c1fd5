from pfs.cli import main

main()
