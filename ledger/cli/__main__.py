from ledger.cli import main

if __name__ == "__main__":  # not when a spawned process imports it (webui.writer_process)
    main()
