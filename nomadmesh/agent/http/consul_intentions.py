"""placeholder"""
from flask import Blueprint

bp = Blueprint("consul_intentions", __name__)
