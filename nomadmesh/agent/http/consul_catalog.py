"""placeholder"""
from flask import Blueprint

bp = Blueprint("consul_catalog", __name__)
