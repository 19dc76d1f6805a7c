# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's action plugins that answer a task on the controller when they can.

A module run costs about a quarter of a second of CPU before it does anything (AnsiballZ builds,
starts and imports it); a task whose answer is a file or two on the controller need not pay it.
An action plugin subclasses ControllerAnswer and implements ``answer``: its result computed here,
in the worker process, or None to run the module as usual. Answering is only sound where the
module would run here as this user, in this environment (a ``local`` connection without become,
a task without ``environment``), so ``answer`` is asked only then, never for an async task. It
sees the arguments as the module would (plain JSON types, not Ansible's tagged ones), and any
error of its own runs the module, which reports it as the module does.
"""

from __future__ import annotations

import json

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash


class ControllerAnswer(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        answer = None
        if not self._task.async_val and self._on_controller():
            try:
                answer = self.answer()
            except Exception:  # pylint: disable=broad-exception-caught  # the module's to report
                answer = None
        if answer is not None:
            result.update(answer)
            return result
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _on_controller(self):
        """The module would run here, as this user, in this environment: it would read and write what
        this process does (a task's own environment may change PATH, HOME and what a path expands to;
        ansible-core 2.19 gives a task without one [{}])."""
        return (self._connection.transport == "local" and not self._play_context.become
                and not any(self._task.environment or ()))

    def validated(self, argument_spec, **constraints):
        """The task's arguments as the module would see them, or None when they have errors (the
        module's to report)."""
        # the types the module would see: Ansible passes it JSON
        args = json.loads(json.dumps(self._task.args, cls=AnsibleJSONEncoder))
        validated = ArgumentSpecValidator(argument_spec, **constraints).validate(args)
        return None if validated.error_messages else validated.validated_parameters

    def answer(self):
        """The module's result computed here, or None when the module has to run."""
        raise NotImplementedError
