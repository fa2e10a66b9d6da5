"""The offline brain: a deterministic planner that runs the QuantTaaS workflow without any LLM.

It implements :class:`assistant.brain.Brain` and derives everything from the conversation's messages (user texts and
tool results), so it is a pure function of the transcript: the same conversation always gives the same next step,
and it can take over a turn that an LLM started (its tool results are reused, never repeated).

A new request ("make digits-cnn under 40 KB with less than 1% accuracy loss") runs::

    list_zoo + list_models        resolve the model named in the text (or given with --model)
    register_model/register_data  for file paths in the text or given with --model/--data
    parse_goal                    the user's words, with the model's name taken out
    inspect_model + profile_layers
    run_sweep                     the agent waits for the job and streams its progress
    get_pareto_report             the measured front and the recommendation
    get_artifact (no content)     the files the answer names

and answers from the measured numbers. Follow-ups on the same model:

- a changed goal ("I can accept 2%", "under 30 KB", "fp16 only"): the server merges the new words into the goal of
  the last verdict (``parse_goal(text, prior=goal)``) and the measured candidates are re-ranked with ``recommend``;
  only when none meets the new goal is a new sweep run;
- "make it smaller / faster / more accurate": the goal gets a bound just past the current recommendation;
- "show me the fastest (smallest, most accurate) one", "why not int4?", "what did you try?", "why this one?".

A message that names a model starts a new request; one that does not refines the last one. Goals stay the
structured data the tools return (:mod:`.goals`), and each candidate's misses come from the server's goal check.

Where things are:

- :mod:`.step`: :func:`plan` and the routing of one message (start here);
- :mod:`.intent`: reading the message (files, the model named, a question about the last sweep, goal words);
- :mod:`.state`: the conversation, the last sweep (the case) and how steps are built;
- :mod:`.workflow`: the tool calls of a request and of its follow-ups;
- :mod:`.prose`: the answers (verdicts, what was tried, why not a technique, why this one);
- :mod:`.goals`: goals as data;
- :mod:`assistant.techniques`: every word said about a technique.
"""

from __future__ import annotations

from assistant.planner.goals import goal_arg, goal_with, same_goal
from assistant.planner.step import PLANNER_NAME, OfflinePlanner, plan

__all__ = ["PLANNER_NAME", "OfflinePlanner", "goal_arg", "goal_with", "plan", "same_goal"]
