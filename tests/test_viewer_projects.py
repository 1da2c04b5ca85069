"""Viewer: the projects a loopback server lists, the header's project switcher,
and the settings page over PUT /api/v1/project. Headless Chromium, as test_viewer.py."""
import pytest

from test_viewer import Project, driver, page, project  # noqa: F401  (fixtures and helpers shared with test_viewer.py)
from selenium.webdriver.support.ui import Select

pytestmark = pytest.mark.browser


def test_setup_lists_the_servers_projects_and_opens_one_with_a_click(page):
    other = Project(page.server, name='billing-worker')
    other.api_php('Payment retry failed', level='Fatal Error')
    page.open('/setup')
    page.wait_count(page.tid('project-row'), 2)
    names = [r.text for r in page.all(page.tid('project-row-name'))]
    assert set(names) == {'viewer-test', 'billing-worker'}
    row = [r for r in page.all(page.tid('project-row')) if 'billing-worker' in r.text][0]
    row.find_element('css selector', page.tid('project-open')).click()
    page.wait_text('Payment retry failed')
    assert page.d.execute_script('return location.hash') == '#/issues'
    assert page.d.execute_script('return localStorage.getItem("errorcapture.key")') == other.key
    assert page.one(page.tid('project-name')).text == 'billing-worker'


def test_header_switcher_moves_between_projects(page):
    page.project.api_php('Only in the first project')
    other = Project(page.server, name='second-app')
    other.api_php('Only in the second project')
    page.open('/issues')
    page.wait_text('Only in the first project')
    switcher = page.wait_css(page.tid('project-switcher'))
    page.wait(lambda: switcher.is_displayed(), message='switcher shown when the server lists two projects')
    page.d.execute_script('window.__sameDocument = "yes";')
    Select(switcher).select_by_value(other.key)
    page.wait_text('Only in the second project')
    assert 'Only in the first project' not in page.text()
    assert page.one(page.tid('project-name')).text == 'second-app'
    assert page.d.execute_script('return window.__sameDocument') == 'yes', 'switching reloaded the page'
    # and back: the option of the open project cannot be chosen
    options = {o.get_attribute('value'): o for o in Select(page.one(page.tid('project-switcher'))).options}
    assert options[other.key].get_attribute('disabled') is not None
    Select(page.one(page.tid('project-switcher'))).select_by_value(page.project.key)
    page.wait_text('Only in the first project')


def test_settings_page_changes_name_webhook_rate_limit_and_retention(page):
    # (a public address as a literal: webhook checks resolve names, and tests reach no network;
    # no issue is created while it is set, so nothing is ever sent there)
    p = page.project
    page.open('/settings')
    name = page.wait_css(page.tid('settings-name'))
    assert name.get_attribute('value') == 'viewer-test'
    name.clear()
    name.send_keys('renamed-app')
    page.one(page.tid('settings-webhook')).send_keys('https://93.184.215.14/hooks/errorcapture')
    for testid, value in (('settings-rate-limit', '120'), ('settings-retention-events', '5000'),
                          ('settings-retention-days', '14')):
        box = page.one(page.tid(testid))
        box.clear()
        box.send_keys(value)
    page.one(page.tid('settings-save')).click()
    page.wait(lambda: page.one(page.tid('project-name')).text == 'renamed-app', message='header follows the new name')
    project = p.read('/api/v1/project')['project']
    assert project['name'] == 'renamed-app'
    assert project['settings']['webhookUrl'] == 'https://93.184.215.14/hooks/errorcapture'
    assert (project['settings']['rateLimit'], project['settings']['retentionEvents'],
            project['settings']['retentionDays']) == (120, 5000, 14)
    # a value the server refuses is shown, not swallowed
    box = page.one(page.tid('settings-retention-days'))
    box.clear()
    box.send_keys('99999')  # more than 36,500 days: the server refuses it
    page.one(page.tid('settings-save')).click()
    error = page.wait_css(page.tid('settings-error'))
    page.wait(lambda: error.is_displayed() and 'retentionDays' in error.text, message='refusal shown')
    assert p.read('/api/v1/project')['project']['settings']['retentionDays'] == 14
    # emptied fields go back to the server's defaults
    page.open('/settings')
    for testid in ('settings-webhook', 'settings-rate-limit'):
        page.wait_css(page.tid(testid)).clear()
    page.one(page.tid('settings-save')).click()
    page.wait(lambda: p.read('/api/v1/project')['project']['settings']['webhookUrl'] is None, message='webhook reset')
