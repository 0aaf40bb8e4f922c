from mlp_backend.cli import main

main(prog_name="mlp-backend")
