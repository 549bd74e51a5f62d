"""placeholder"""
from flask import Blueprint

bp = Blueprint("consul_kv", __name__)
