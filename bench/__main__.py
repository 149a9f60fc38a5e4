import sys

try:
    from bench.runner import main
except KeyboardInterrupt:  # during the imports (some run child processes): no server yet
    print("interrupted: no server started, no report written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    raise SystemExit(main())
