"""The WSGI entry point: ``gunicorn -c etc/gunicorn.conf.py wsgi:app``."""
from dicomrst import create_app

app = create_app()
