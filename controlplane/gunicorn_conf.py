"""gunicorn settings, from the environment; its own log lines go through our structured
logging like everything else."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
graceful_timeout = 10
timeout = 60
control_socket = os.path.join(os.environ.get("PLINTH_DATA_DIR", "/tmp"), "gunicorn.ctl")
accesslog = None  # the request middleware logs one structured line per request
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": []},
    # gunicorn.error propagates to the root logger, which Django's settings configure.
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True}},
}
