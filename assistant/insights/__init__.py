"""The loop back: what the CX team learns from the conversations the assistant could not finish.

- `gaps.py`: knowledge gaps, the questions the assistant could not answer, grouped, worst first;
- `drafts.py`: one action per gap, a draft approved answer or help-article outline from the agents' replies;
- `copilot.py`: a reply drafted for the agent of a handoff, and what agents did with the drafts;
- `quality.py`: per handoff, was it avoidable, and did the agent re-ask what the packet already had.
"""
