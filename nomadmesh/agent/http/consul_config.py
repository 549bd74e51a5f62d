"""placeholder"""
from flask import Blueprint

bp = Blueprint("consul_config", __name__)
