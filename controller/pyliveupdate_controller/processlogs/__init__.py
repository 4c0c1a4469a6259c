"""pylu-processlogs: reports from pyliveupdate's compressed logs."""
