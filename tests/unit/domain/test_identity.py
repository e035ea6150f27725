"""Principals: which project a submission belongs to, what a caller may see, and roles."""

from __future__ import annotations

import pytest

from gateway.domain.errors import Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role, parse_roles


def who(*projects: str, roles: tuple[Role, ...] = (Role.RESEARCHER,), user: str = "alice") -> Principal:
    return Principal(user=user, roles=frozenset(roles), projects=frozenset(projects))


# ---------------------------------------------------------------- project_for_submission


def test_the_requested_project_is_used_when_the_caller_is_a_member() -> None:
    assert who("p1", "p2").project_for_submission("p2") == "p2"


def test_a_single_project_is_implied() -> None:
    assert who("p1").project_for_submission(None) == "p1"
    assert who("p1").project_for_submission("") == "p1"


def test_several_projects_need_a_tag() -> None:
    with pytest.raises(InvalidRequest) as info:
        who("p1", "p2").project_for_submission(None)
    assert "'project' tag" in info.value.msg


def test_no_project_means_no_submission() -> None:
    with pytest.raises(InvalidRequest) as info:
        who().project_for_submission(None)
    assert "not a member of any project" in info.value.msg


def test_requesting_a_project_one_is_not_a_member_of_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        who("p1").project_for_submission("p2")
    assert "'p2'" in info.value.msg and "not a member" in info.value.msg


def test_admins_also_need_membership_to_submit() -> None:
    admin = who("p1", roles=(Role.ADMIN,))
    assert admin.project_for_submission(None) == "p1"
    with pytest.raises(InvalidRequest):
        admin.project_for_submission("p2")


def test_submission_needs_the_researcher_role() -> None:
    with pytest.raises(Forbidden) as info:
        who("p1", roles=(Role.OUTPUT_CHECKER,)).project_for_submission("p1")
    assert "researcher" in info.value.msg


# ---------------------------------------------------------------- visibility and roles


def test_check_visible_raises_not_found_for_other_projects() -> None:
    alice = who("p1")
    alice.check_visible("p1", "task 't1'")
    with pytest.raises(NotFound) as info:
        alice.check_visible("p2", "task 't1'")
    assert info.value.msg == "task 't1' not found"
    assert not isinstance(info.value, Forbidden)


def test_admins_see_every_project() -> None:
    admin = who(roles=(Role.ADMIN,))
    assert admin.is_admin
    assert admin.can_see_project("any")
    admin.check_visible("any", "task")
    assert not who("p1").is_admin


def test_require_role() -> None:
    checker = who("p1", roles=(Role.OUTPUT_CHECKER,))
    checker.require_role(Role.OUTPUT_CHECKER)
    checker.require_role(Role.RESEARCHER, Role.OUTPUT_CHECKER)
    with pytest.raises(Forbidden) as info:
        checker.require_role(Role.RESEARCHER)
    assert info.value.msg == "this action needs one of the roles: researcher"
    with pytest.raises(Forbidden):
        who("p1", roles=()).require_role(Role.RESEARCHER, Role.OUTPUT_CHECKER)


def test_admin_passes_every_role_check() -> None:
    who(roles=(Role.ADMIN,)).require_role(Role.OUTPUT_CHECKER)


def test_parse_roles_ignores_unknown_names() -> None:
    assert parse_roles(["researcher", "offline_access", "Admin", "admin", "uma_authorization"]) == {
        Role.RESEARCHER, Role.ADMIN
    }
    assert parse_roles([]) == frozenset()
    assert parse_roles(["researcher", "researcher"]) == {Role.RESEARCHER}
