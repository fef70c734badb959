"""Offline provider emulators (real HTTP servers on loopback) with fault injection."""

from emp_tasks.sandbox.faults import Fault, FaultQueue
from emp_tasks.sandbox.gemini import GeminiEmulator
from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.sandbox.server import CallRecord, EmulatorServer

__all__ = [
    "CallRecord",
    "EmulatorServer",
    "Fault",
    "FaultQueue",
    "GeminiEmulator",
    "GlifEmulator",
    "OpenAIEmulator",
]
