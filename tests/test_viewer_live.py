"""Viewer: pages that stay live without moving what the reader is looking at
(issue 17, "Live everywhere it matters"). Headless Chromium, as test_viewer.py."""
import time

import pytest
from selenium.webdriver.common.by import By

from test_viewer import driver, http_requests, iso, page, project, sentry_event, transaction  # noqa: F401

pytestmark = pytest.mark.browser


def test_requests_offer_new_rows_instead_of_moving_the_table(page):
    p = page.project
    p.seestack('http-requests', {'requests': http_requests(3)})
    page.open('/requests')
    page.wait_count(page.tid('request-row'), 3)
    first = page.all(page.tid('request-row'))[0].get_attribute('data-request-id')
    p.seestack('http-requests', {'requests': http_requests(2)})
    notice = page.wait_css(page.tid('requests-new'))
    page.wait(lambda: notice.is_displayed() and '2 new requests' in notice.text, timeout=15, message='2 new offered')
    assert len(page.all(page.tid('request-row'))) == 3, 'the table did not move'
    assert page.all(page.tid('request-row'))[0].get_attribute('data-request-id') == first
    notice.find_element(By.TAG_NAME, 'button').click()
    page.wait_count(page.tid('request-row'), 5)
    page.wait(lambda: not page.one(page.tid('requests-new')).is_displayed(), message='notice gone after showing')


def test_performance_and_ai_offer_what_arrived(page):
    p = page.project
    p.open_sentry([transaction('GET /health', 5, [])])
    page.open('/performance')
    page.wait_count(page.tid('txn-name-row'), 1)
    p.open_sentry([transaction('GET /health', 6, []), transaction('GET /other', 7, [])])
    notice = page.wait_css(page.tid('performance-new'))
    page.wait(lambda: notice.is_displayed() and '2 new transactions' in notice.text, timeout=15, message='offered')
    assert len(page.all(page.tid('txn-name-row'))) == 1
    notice.find_element(By.TAG_NAME, 'button').click()
    page.wait_count(page.tid('txn-name-row'), 2)
    p.open_sentry([{'type': 'ai_generation', 'provider': 'openai', 'model': 'gpt-4o-mini', 'inputTokens': 5,
                    'outputTokens': 5, 'totalCostUsd': 0.0001, 'status': 'ok', 'timestamp': iso(time.time())}])
    page.open('/ai')
    page.wait_count(page.tid('ai-model-row'), 1)
    p.open_sentry([{'type': 'ai_generation', 'provider': 'openai', 'model': 'gpt-4o', 'inputTokens': 5,
                    'outputTokens': 5, 'totalCostUsd': 0.0001, 'status': 'ok', 'timestamp': iso(time.time())}])
    notice = page.wait_css(page.tid('ai-new'))
    page.wait(lambda: notice.is_displayed() and '1 new generation ' in notice.text, timeout=15, message='ai offered')
    notice.find_element(By.TAG_NAME, 'button').click()
    page.wait_count(page.tid('ai-model-row'), 2)


def test_issue_page_counts_move_live_and_a_new_event_is_offered(page):
    p = page.project
    p.sentry_store(sentry_event(value='live one'))
    issue = p.issue_matching('live one')
    page.open('/issues/%s' % issue['id'])
    page.wait(lambda: page.one(page.tid('issue-count')).text == '1', message='one event')
    shown = page.one(page.tid('event-detail')).get_attribute('data-event-id')
    page.d.execute_script('window.scrollTo(0, 400); window.__sameDocument = "yes";')
    where = 'return document.querySelector(\'[data-testid="exception"]\').getBoundingClientRect().top'
    top = page.d.execute_script(where)
    p.sentry_store(sentry_event(value='live one', marker=' (second)'))
    page.wait(lambda: page.one(page.tid('issue-count')).text == '2', timeout=15, message='count follows')
    notice = page.wait_css(page.tid('issue-new-events'))
    page.wait(lambda: notice.is_displayed() and '1 new event ' in notice.text, message='new event offered')
    assert page.one(page.tid('event-detail')).get_attribute('data-event-id') == shown, 'the shown event stayed'
    assert page.d.execute_script('return window.__sameDocument') == 'yes'
    assert abs(page.d.execute_script(where) - top) < 1, 'the exception did not move under the reader'
    notice.find_element(By.TAG_NAME, 'button').click()
    page.wait(lambda: page.one(page.tid('event-detail')).get_attribute('data-event-id') != shown, message='latest shown')
