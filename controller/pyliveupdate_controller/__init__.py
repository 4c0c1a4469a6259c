"""Controller side of pyliveupdate: the pylu-controller REPL and pylu-processlogs."""
