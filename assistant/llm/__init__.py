"""The chat model behind one gateway: the embedded llama.cpp model (`llamacpp`), the deterministic fake (`fake`),
the factory that picks one from `Settings` (`factory`) and `ChatGateway` (`gateway`), through which every call goes
(prompt rendering, streaming, deadline, retries, logging, errors)."""

from assistant.llm.factory import build_chat_model
from assistant.llm.fake import FakeSupportChatModel
from assistant.llm.gateway import ChatGateway, parse_json_reply
from assistant.llm.llamacpp import LlamaCppChatModel, default_gguf_path, open_llama

__all__ = [
    "ChatGateway",
    "FakeSupportChatModel",
    "LlamaCppChatModel",
    "build_chat_model",
    "default_gguf_path",
    "open_llama",
    "parse_json_reply",
]
