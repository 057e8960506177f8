"""The error catalogue: errors have one home.

Every integration failure (Salesforce, SMTP) is turned into a catalogue code by
:func:`describe_failure`, and :func:`record_failure` writes it to the external-integration error
log: one row per open incident ``(integration, operation, code)``, whose ``count`` and ``last_at``
rise while the failure repeats. :func:`record_recovery` closes the incidents. The hooks, the CLI,
the admin and the alert mails all show the catalogue's message and remedy (Japanese and English);
the raw detail is kept apart, scrubbed of secrets, without control characters, at most 2,000
characters long.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import logging
import re
import smtplib
import socket
import ssl
from typing import Any

import requests
from simple_salesforce import exceptions as sfx

from core.settings import SECRET_FIELDS, load_settings
from core.store import now_iso

DETAIL_MAX = 2000
INTEGRATIONS = ("salesforce", "smtp", "plugin")
CONNECTION_TEST = "connection_test"            # the admin's and `sfcti connect`'s test, never alerted
SALESFORCE_OPERATIONS = ("lookup", "register", "nightly")   # the plugin's own Salesforce work
# screens that ran out of budget waiting for Salesforce: closed only by screens answered in time
SCREEN_LATE = "SCREEN_LATE"

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CatalogueEntry:
    """One kind of failure: what went wrong and what the admin should do, in Japanese and English."""

    code: str
    integration: str  # "salesforce", "smtp" or "any"
    message_ja: str
    message_en: str
    remedy_ja: str
    remedy_en: str

    def message(self, lang: str = "ja") -> str:
        """The message in ``lang`` ("ja" or "en")."""
        return self.message_en if lang == "en" else self.message_ja

    def remedy(self, lang: str = "ja") -> str:
        """The remedy in ``lang`` ("ja" or "en")."""
        return self.remedy_en if lang == "en" else self.remedy_ja


_SF_ROLE = ("Lead・Contact・Account の参照権限と Task の作成権限",
            "read access to Lead, Contact and Account and create access on Task")

_ENTRIES = [
    # -- Salesforce login -------------------------------------------------------------------------
    ("INVALID_LOGIN", "salesforce",
     "Salesforce へのログインに失敗しました。ユーザー名・パスワード・セキュリティトークンのいずれかが正しくないか、ユーザーがロックされています。",
     "Salesforce rejected the login: the username, password or security token is wrong, or the user is locked out.",
     "ユーザー名とパスワードを確認してください。パスワードを変更した場合はセキュリティトークンも再発行されるため、Salesforce の［個人設定］→［私のセキュリティトークンのリセット］で新しいトークンを取得して入力し直してください。ユーザーがロックされていないか、有効かどうかは Salesforce の管理者が［設定］→［ユーザー］で確認できます。",
     "Check the username and password. Changing the password also resets the security token: get a new one from Salesforce (personal settings, \"Reset My Security Token\") and enter it again. A Salesforce administrator can check under Setup > Users that the user is active and not locked out."),
    ("LOGIN_MUST_USE_SECURITY_TOKEN", "salesforce",
     "このサーバーの IP アドレスは Salesforce の信頼済み IP 範囲に含まれていないため、セキュリティトークンが必要です。",
     "Salesforce requires a security token because this server's IP address is outside the org's trusted IP ranges.",
     "Salesforce の［個人設定］→［私のセキュリティトークンのリセット］でトークンを取得し、セキュリティトークン欄に入力してください。または Salesforce の管理者が［設定］→［ネットワークアクセス］でこのサーバーの IP アドレスを信頼済み IP 範囲に追加してください。",
     "Get the security token from Salesforce (personal settings, \"Reset My Security Token\") and enter it in the security token field, or have a Salesforce administrator add this server's IP address to the trusted IP ranges (Setup > Network Access)."),
    ("API_DISABLED_FOR_ORG", "salesforce",
     "この Salesforce 組織では API が使えません。Professional Edition や Essentials など、API を含まないエディションです。",
     "The API is not enabled for this Salesforce org: its edition (such as Professional or Essentials) does not include API access.",
     "API を利用できるエディション（Enterprise、Unlimited、Developer、Performance、Platform）が必要です。Professional Edition では API のアドオン購入で利用できる場合があります。Salesforce の営業担当にお問い合わせください。",
     "Use an edition with API access (Enterprise, Unlimited, Developer, Performance or Platform). Professional Edition can sometimes add API access as a paid add-on: ask your Salesforce account executive."),
    ("API_CURRENTLY_DISABLED", "salesforce",
     "このユーザーでは Salesforce API が無効になっているか、Salesforce 側で API が一時的に停止しています。",
     "The Salesforce API is disabled for this user, or Salesforce has temporarily suspended API access.",
     "Salesforce の管理者に、このユーザーのプロファイルまたは権限セットで「API の有効化」権限が付与されているか確認してもらってください。付与済みであれば Salesforce の障害情報（status.salesforce.com）を確認し、時間をおいて再試行してください。",
     "Ask a Salesforce administrator to grant the \"API Enabled\" permission in this user's profile or a permission set. If it is already granted, check status.salesforce.com and try again later."),
    ("INVALID_OPERATION_WITH_EXPIRED_PASSWORD", "salesforce",
     "連携ユーザーの Salesforce パスワードの有効期限が切れています。",
     "The integration user's Salesforce password has expired.",
     "連携ユーザーで Salesforce にブラウザーからログインしてパスワードを変更し、新しいパスワードと（再発行された）セキュリティトークンをこの画面で保存し直してください。連携ユーザーのプロファイルで「パスワードを無期限にする」を設定すると再発を防げます。",
     "Log in to Salesforce in a browser as the integration user, change the password, then save the new password and the newly issued security token here. Setting \"Password Never Expires\" on the integration user's profile prevents this from happening again."),
    ("INVALID_SESSION_ID", "salesforce",
     "Salesforce のセッションが失効し、再ログインにも失敗しました。",
     "The Salesforce session expired or was revoked, and logging in again did not succeed.",
     "設定画面で「接続をテストして保存」を実行してください。失敗する場合は表示される原因に従って対処してください。セッションのタイムアウトや、管理者によるセッションの削除、パスワードの変更が原因のことがあります。",
     "Run \"Test connection and save\" on the settings page and follow the reason it shows if it fails. Session timeouts, an administrator removing sessions, or a password change can cause this."),
    ("INSUFFICIENT_ACCESS", "salesforce",
     "連携ユーザーに必要な権限がありません。" + _SF_ROLE[0] + "が必要です。",
     "The integration user lacks a permission it needs: " + _SF_ROLE[1] + ".",
     "Salesforce の管理者に、連携ユーザーのプロファイルまたは権限セットで" + _SF_ROLE[0] + "（および「API の有効化」）を付与してもらってください。付与後に「接続をテストして保存」で確認できます。",
     "Ask a Salesforce administrator to give the integration user " + _SF_ROLE[1] + " (and \"API Enabled\") through its profile or a permission set, then check with \"Test connection and save\"."),
    ("REQUEST_LIMIT_EXCEEDED", "salesforce",
     "Salesforce 組織の API 呼び出し上限（24 時間あたり、または同時実行数）に達しました。",
     "The Salesforce org has used up its API request limit (the rolling 24-hour allowance or the concurrent request limit).",
     "24 時間の上限は時間の経過とともに回復します。［設定］→［組織情報］で API 使用量を確認し、他の連携ツールの呼び出しを減らすか、連絡先の取得を「夜間」にしてください。恒常的に不足する場合は Salesforce から API 呼び出し数を追加購入してください。",
     "The 24-hour allowance recovers gradually as older calls age out. Check API usage under Setup > Company Information, reduce calls made by other integrations, or switch contact fetching to \"nightly\". If it happens regularly, buy additional API calls from Salesforce."),
    ("LOGIN_RATE_EXCEEDED", "salesforce",
     "短時間にログインが多すぎるため、Salesforce がログインを一時的に拒否しています。",
     "Salesforce is temporarily refusing logins because there were too many in a short time.",
     "1 時間ほど待ってから再試行してください。同じユーザーでログインを繰り返す他のツールがないか確認してください。",
     "Wait about an hour and try again. Check whether another tool keeps logging in as the same user."),
    ("PASSWORD_LOCKOUT", "salesforce",
     "ログインの失敗が続いたため、連携ユーザーがロックされています。",
     "The integration user is locked out after too many failed logins.",
     "ロックアウト期間が過ぎるのを待つか、Salesforce の管理者に［設定］→［ユーザー］でロックを解除してもらい、正しいパスワードを保存し直してください。",
     "Wait for the lockout period to end or ask a Salesforce administrator to unlock the user (Setup > Users), then save the correct password."),
    # -- network -------------------------------------------------------------------------------
    ("TIMEOUT", "salesforce",
     "Salesforce からの応答が制限時間内にありませんでした。",
     "Salesforce did not answer within the time limit.",
     "ネットワークの状態と status.salesforce.com の障害情報を確認してください。遅い回線では設定の接続・読み取りタイムアウトを長くしてください。画面表示は番号のみで続行されます。",
     "Check the network and status.salesforce.com. On slow links, raise the connect and read timeouts in the settings. Screens keep showing the number meanwhile."),
    ("CONNECTION_ERROR", "salesforce",
     "Salesforce に接続できませんでした（名前解決の失敗、接続拒否、ネットワーク切断など）。",
     "Could not connect to Salesforce (name resolution failed, connection refused or the network is down).",
     "このサーバーからインターネットに出られるか、プロキシやファイアウォールで *.salesforce.com への HTTPS（443 番ポート）が許可されているか確認してください。ログイン URL（My Domain）の綴りも確認してください。",
     "Check that this server can reach the internet and that proxies and firewalls allow HTTPS (port 443) to *.salesforce.com. Check the spelling of the login URL (My Domain) as well."),
    ("TLS_ERROR", "salesforce",
     "Salesforce との TLS（SSL）接続を確立できませんでした。証明書を検証できません。",
     "The TLS (SSL) connection to Salesforce failed: the server certificate could not be verified.",
     "社内プロキシが通信を復号している場合は、プロキシのルート証明書を含む PEM ファイルを設定の「CA バンドル」に指定してください。サーバーの時刻が正しいことも確認してください。",
     "If a corporate proxy inspects HTTPS traffic, set the \"CA bundle\" setting to a PEM file containing the proxy's root certificate. Also check that the server's clock is correct."),
    ("SERVER_ERROR", "salesforce",
     "Salesforce がサーバーエラー（5xx）を返しました。",
     "Salesforce answered with a server error (5xx).",
     "Salesforce 側の一時的な障害の可能性があります。status.salesforce.com を確認し、時間をおいて再試行してください。続く場合は詳細を添えて Salesforce サポートに問い合わせてください。",
     "This is usually a temporary problem at Salesforce. Check status.salesforce.com and try again later; if it persists, contact Salesforce support with the detail shown."),
    ("BAD_RESPONSE", "salesforce",
     "Salesforce からの応答を読み取れませんでした（JSON ではない、途中で切れている、またはプロキシなどの Web ページが返されました）。",
     "The answer from Salesforce could not be read: it was not JSON, was cut short, or was a web page (from a proxy or a maintenance page).",
     "プロキシやファイアウォールが Salesforce への通信を書き換えたり遮断したりしていないか、ログイン URL が正しいかを確認してください。status.salesforce.com でメンテナンス情報も確認してください。画面表示は番号のみで続行されます。",
     "Check that no proxy or firewall rewrites or blocks the traffic to Salesforce, that the login URL is right, and status.salesforce.com for maintenance. Screens keep showing the number meanwhile."),
    ("NOT_FOUND", "salesforce",
     "Salesforce 上で要求したリソースが見つかりませんでした。",
     "Salesforce could not find the requested resource.",
     "ログイン URL と API バージョンの設定を確認してください（組織が対応していない API バージョンではこのエラーになります）。",
     "Check the login URL and API version settings (an API version the org does not support causes this)."),
    ("INVALID_FIELD", "salesforce",
     "Salesforce への問い合わせに、この組織に存在しない項目が含まれていました。",
     "A query sent to Salesforce named a field this org does not have.",
     "本製品の不具合の可能性があります。詳細を添えて開発元に報告してください。",
     "This is probably a bug in this product: please report it with the detail shown."),
    ("MALFORMED_QUERY", "salesforce",
     "Salesforce への問い合わせが受け付けられませんでした（構文エラーまたは長すぎる要求）。",
     "Salesforce rejected a query as malformed or too long.",
     "本製品の不具合の可能性があります。詳細を添えて開発元に報告してください。",
     "This is probably a bug in this product: please report it with the detail shown."),
    ("NOT_CONFIGURED", "salesforce",
     "Salesforce への接続が設定されていません。",
     "Salesforce is not connected.",
     "管理画面の設定ページで接続情報を入力し、「接続をテストして保存」を実行してください。",
     "Enter the connection details on the admin settings page and click \"Test connection and save\"."),
    ("SCREEN_LATE", "salesforce",
     "Salesforce の応答が画面表示の待ち時間上限に間に合わなかったため、着信画面には番号だけを表示しました。",
     "Salesforce answered after the screen budget, so call screens showed only the number.",
     "status.salesforce.com で Salesforce の障害情報を、このサーバーから Salesforce までのネットワーク（プロキシ、回線の混雑）を確認してください。いつもこの程度遅い場合は、電話機が待てる範囲で設定の「画面表示の待ち時間上限」を長くしてください。画面が待ち時間内に表示されるようになると自動で復旧します。",
     "Check status.salesforce.com and the network between this server and Salesforce (proxy, congested link). If Salesforce is regularly this slow, raise the screen time budget in the settings, within what the phone system waits. The incident closes by itself once screens are answered within the budget again."),
    # -- OAuth ---------------------------------------------------------------------------------
    ("OAUTH_INVALID_GRANT", "salesforce",
     "Salesforce の認可（リフレッシュトークンまたは認可コード）が無効です。取り消されたか、有効期限が切れています。",
     "The Salesforce authorization (refresh token or authorization code) is no longer valid: it was revoked or has expired.",
     "設定ページで「Salesforce ID で認証」をもう一度実行して再接続してください。接続アプリケーションの「リフレッシュトークンポリシー」で有効期限が設定されていないかも確認してください。",
     "Reconnect with Salesforce (\"Connect with Salesforce\" on the settings page). Also check the connected app's refresh token policy for an expiry."),
    ("OAUTH_INVALID_CLIENT", "salesforce",
     "接続アプリケーションのコンシューマー鍵またはコンシューマーの秘密が正しくありません。",
     "Salesforce rejected the connected app's consumer key or consumer secret.",
     "Salesforce の［設定］→［アプリケーションマネージャー］で接続アプリケーションの鍵と秘密を確認し、設定ページに入力し直してください。作成直後の接続アプリケーションは有効になるまで最大 10 分かかります。",
     "Copy the consumer key and secret again from the connected app (Setup > App Manager) into the settings page. A newly created connected app can take up to 10 minutes to become active."),
    ("OAUTH_REDIRECT_URI_MISMATCH", "salesforce",
     "コールバック URL が接続アプリケーションの設定と一致しません。",
     "The callback URL does not match the one registered in the connected app.",
     "接続アプリケーションの「コールバック URL」に、管理画面の URL に /settings/oauth/callback を付けたもの（設定ページに表示されます）を登録し、設定の「管理画面の URL」がブラウザーで開いている URL と一致しているか確認してください。",
     "Register the admin's URL followed by /settings/oauth/callback (shown on the settings page) as the connected app's callback URL, and check that the \"admin base URL\" setting matches the URL you open in the browser."),
    ("OAUTH_STATE_MISMATCH", "salesforce",
     "Salesforce からの戻りが、開始した認証要求と一致しませんでした（state の不一致）。",
     "The answer from Salesforce did not match the sign-in that was started (state mismatch).",
     "もう一度「Salesforce ID で認証」からやり直してください。古いタブや別のブラウザーで開いた画面からは完了できません。",
     "Start again with \"Connect with Salesforce\"; a sign-in cannot be completed from an old tab or another browser."),
    ("OAUTH_INVALID_REQUEST", "salesforce",
     "Salesforce が OAuth 要求を受け付けませんでした（PKCE のコード検証値の不一致、または必須パラメーターの不足）。",
     "Salesforce refused the OAuth request: the PKCE code verifier did not match, or a required parameter was missing.",
     "もう一度「Salesforce ID で認証」からやり直してください。繰り返す場合は、接続アプリケーションで「サポートされる認証フローに PKCE 拡張を要求」が有効なことを確認し、詳細を添えて開発元に報告してください。",
     "Start again with \"Connect with Salesforce\". If it happens again, check that the connected app requires the PKCE extension and report it with the detail shown."),
    ("OAUTH_ACCESS_DENIED", "salesforce",
     "Salesforce の同意画面で「拒否」が選ばれたため、接続されませんでした。",
     "Access was denied on Salesforce's consent page, so nothing was connected.",
     "接続する場合は、もう一度「Salesforce ID で認証」を実行し、Salesforce の画面で「許可」を押してください。",
     "To connect, click \"Connect with Salesforce\" again and choose \"Allow\" on Salesforce's page."),
    ("OAUTH_CLIENT_CREDENTIALS", "salesforce",
     "クライアントログイン情報フローを使えません。組織の My Domain の URL でないか、接続アプリケーションに「別のユーザーとして実行」ユーザーが設定されていません。",
     "The client credentials flow cannot be used: the login URL is not the org's My Domain, or the connected app has no run-as user.",
     "設定の「ログイン URL」に My Domain の URL（https://<組織>.my.salesforce.com）を入力し、接続アプリケーションの［ポリシーを編集］で「クライアントログイン情報フローを有効化」と「別のユーザーとして実行」（API 権限を持つ連携ユーザー）を設定してください。",
     "Enter the org's My Domain URL (https://<org>.my.salesforce.com) as the login URL, and in the connected app's policies enable the client credentials flow with a run-as user (an integration user with API access)."),
    ("INVALID_OPERATION", "salesforce",
     "この組織ではユーザー名・パスワードによるログイン（SOAP API login()）が無効です。Winter '26 以降に作成された組織では既定で無効で、Summer '27 で廃止されます。",
     "This org does not allow username-and-password login (SOAP API login()): it is off by default for orgs created in Winter '26 and later and is retired in Summer '27.",
     "設定ページで認証方式を「Salesforce ID で認証（OAuth 2.0）」に切り替え、接続アプリケーションのコンシューマー鍵と秘密を入力して「Salesforce ID で認証」を実行してください（docs/oauth.md を参照）。",
     "Switch the authentication method on the settings page to \"Connect with Salesforce (OAuth 2.0)\", enter the connected app's consumer key and secret and click \"Connect with Salesforce\" (see docs/oauth.md)."),
    ("OAUTH_ERROR", "salesforce",
     "Salesforce の OAuth 認証でエラーが発生しました。",
     "Salesforce OAuth authentication failed.",
     "詳細を確認し、接続アプリケーションの設定（OAuth 範囲に api と refresh_token、コールバック URL、許可されているユーザー）を見直してから再接続してください。",
     "Read the detail, review the connected app (OAuth scopes api and refresh_token, callback URL, permitted users) and reconnect."),
    ("INDEX_STALE", "salesforce",
     "電話番号インデックスを最新にできませんでした。登録済みの発信者はインデックスの内容（最後の同期の時点）で表示されます。",
     "The phone index could not be brought up to date. Known callers are still named from the index as of its last sync.",
     "詳細の原因（接続障害や API 上限など）を確認してください。Salesforce が回復すると次の同期で自動的に最新になります。すぐに同期するには `sfcti index sync` を実行してください。",
     "Read the cause in the detail (connection failure, API limit...). The next sync brings the index up to date once Salesforce answers again; run `sfcti index sync` to sync now."),
    # -- logging calls as Tasks (core/activity.py) ----------------------------------------------
    ("TASK_CREATE_DENIED", "salesforce",
     "連携ユーザーに ToDo（活動）の作成権限がないため、通話を Salesforce の活動履歴に登録できません。",
     "The integration user may not create Tasks (activities), so calls cannot be logged in Salesforce.",
     "Salesforce の管理者に、連携ユーザーのプロファイルまたは権限セットで「ToDo の編集」（活動の登録権限）と Task の作成権限を付与してもらってください。待機中の通話は付与後に自動で登録されます。",
     "Ask a Salesforce administrator to give the integration user the \"Edit Tasks\" permission (create access on Task) through its profile or a permission set. The waiting calls are logged automatically once it is granted."),
    ("INACTIVE_OWNER_OR_USER", "salesforce",
     "担当者に割り当てた Salesforce ユーザーが無効になっているため、その通話の活動は連携ユーザーの所有で登録しました。",
     "The Salesforce user an agent is mapped to is inactive, so that agent's calls were logged with the integration user as owner.",
     "［担当者］画面で、この担当者を有効な Salesforce ユーザーに割り当て直してください。",
     "Map the agent to an active Salesforce user on the Agents page."),
    ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "salesforce",
     "Salesforce 組織の入力規則が通話の活動（Task）の登録を拒否しました。",
     "A validation rule of the Salesforce org refused the call's Task.",
     "詳細に入力規則のメッセージが表示されています。Salesforce の管理者に［設定］→［オブジェクトマネージャー］→［活動］→［入力規則］でその規則を確認してもらい、通話の記録を許すよう調整したうえで、通話履歴の「再登録」を押してください。",
     "The detail shows the rule's message. Ask a Salesforce administrator to review that rule (Setup > Object Manager > Activity > Validation Rules) so that call records pass, then press \"Log again\" in the call history."),
    ("TASK_REJECTED", "salesforce",
     "Salesforce が通話の活動（Task）の登録を拒否しました。",
     "Salesforce refused the call's Task.",
     "詳細に Salesforce の理由が表示されています。原因（削除されたレコード、項目の制限など）を取り除いてから、通話履歴の「再登録」を押してください。",
     "The detail shows Salesforce's reason. Remove its cause (a deleted record, a field restriction...) and press \"Log again\" in the call history."),
    # -- SMTP ----------------------------------------------------------------------------------
    ("SMTP_AUTH", "smtp",
     "SMTP サーバーがユーザー名またはパスワードを受け付けませんでした。",
     "The SMTP server rejected the username or password.",
     "通知メール設定の SMTP ユーザーとパスワードを確認してください。Microsoft 365 や Gmail ではアプリパスワードや SMTP 認証の許可が必要な場合があります。",
     "Check the SMTP user and password in the alert e-mail settings. Microsoft 365 and Gmail may require an app password or SMTP AUTH to be allowed for the mailbox."),
    ("SMTP_CONNECTION", "smtp",
     "SMTP サーバーに接続できませんでした。",
     "Could not connect to the SMTP server.",
     "SMTP ホスト名とポート番号（STARTTLS は通常 587、SSL は 465）を確認し、このサーバーからそのポートへの通信がファイアウォールで許可されているか確認してください。送れなかった通知は再送待ちに残り、自動で再送されます。",
     "Check the SMTP host and port (usually 587 for STARTTLS, 465 for SSL) and that firewalls allow this server to reach it. Unsent alerts wait in the outbox and are retried automatically."),
    ("SMTP_TLS", "smtp",
     "SMTP サーバーとの暗号化（STARTTLS/SSL）を確立できませんでした。",
     "Could not establish encryption (STARTTLS/SSL) with the SMTP server.",
     "暗号化方式とポートの組み合わせ（STARTTLS は 587、SSL は 465）を確認してください。サーバー証明書が社内 CA のものなら CA バンドルを設定してください。",
     "Check that the security mode matches the port (STARTTLS on 587, SSL on 465). If the server's certificate comes from an internal CA, set the CA bundle."),
    ("SMTP_RECIPIENTS_REFUSED", "smtp",
     "SMTP サーバーが宛先のメールアドレスを受け付けませんでした。",
     "The SMTP server refused the recipient addresses.",
     "通知先のメールアドレスの綴りを確認してください。社外宛ての送信（リレー）が許可されていない SMTP サーバーもあります。",
     "Check the spelling of the alert recipients. Some SMTP servers do not relay to outside addresses."),
    ("SMTP_SENDER_REFUSED", "smtp",
     "SMTP サーバーが差出人のメールアドレスを受け付けませんでした。",
     "The SMTP server refused the sender address.",
     "差出人アドレスを、SMTP ユーザーが送信を許可されているアドレスにしてください。",
     "Set the sender to an address the SMTP user is allowed to send from."),
    ("SMTP_ERROR", "smtp",
     "通知メールの送信中に SMTP エラーが発生しました。",
     "The SMTP server returned an error while sending an alert e-mail.",
     "詳細に表示された SMTP サーバーの応答を確認してください。送れなかった通知は再送待ちに残り、自動で再送されます。",
     "Read the SMTP server's answer in the detail. Unsent alerts wait in the outbox and are retried automatically."),
    # -- anything else -------------------------------------------------------------------------
    ("UNKNOWN", "any",
     "予期しないエラーが発生しました。",
     "An unexpected error occurred.",
     "詳細を確認してください。繰り返し発生する場合は、詳細を添えて開発元に報告してください。",
     "Read the detail. If it keeps happening, report it with the detail shown."),
    # -- the phone system's call objects -------------------------------------------------------
    ("CALL_ID_UNSTORABLE", "any",
     "電話システムから渡された通話 ID を保存できないため、その通話を通話履歴に記録しませんでした（着信画面は表示されています）。通話 ID が文字列でない、Unicode として不正な文字を含む、または 1,000 文字を超えています。",
     "A call was not recorded in the call history because the call id the phone system passed cannot be stored (its screen was still shown): the id is not text, holds characters that are not valid Unicode, or is longer than 1,000 characters.",
     "詳細に理由が表示されています。電話システム（またはその連携設定）が、通話ごとに一意で 1,000 文字以内の文字列を通話 ID として渡すようにしてください。記録されなかった通話は後から追加されません。",
     "The detail says why. Make the phone system (or its integration) pass each call's id as text of at most 1,000 characters, unique per call. Calls that were not recorded are not added later."),
]

CATALOGUE: dict[str, CatalogueEntry] = {row[0]: CatalogueEntry(*row) for row in _ENTRIES}

# Salesforce and OAuth codes that mean the same thing as a catalogue entry.
ALIASES = {
    "INSUFFICIENT_ACCESS_OR_READONLY": "INSUFFICIENT_ACCESS",
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": "INSUFFICIENT_ACCESS",
    "INVALID_TYPE": "INSUFFICIENT_ACCESS",  # "sObject type 'Lead' is not supported": no object access
    "API_DISABLED": "API_CURRENTLY_DISABLED",
    "SERVER_UNAVAILABLE": "SERVER_ERROR",
    "UNKNOWN_EXCEPTION": "SERVER_ERROR",
    "invalid_grant": "OAUTH_INVALID_GRANT",
    "invalid_client": "OAUTH_INVALID_CLIENT",
    "invalid_client_id": "OAUTH_INVALID_CLIENT",
    "invalid_client_credentials": "OAUTH_INVALID_CLIENT",
    "unauthorized_client": "OAUTH_INVALID_CLIENT",
    "redirect_uri_mismatch": "OAUTH_REDIRECT_URI_MISMATCH",
    "invalid_state": "OAUTH_STATE_MISMATCH",
    "invalid_request": "OAUTH_INVALID_REQUEST",
    "access_denied": "OAUTH_ACCESS_DENIED",
    "access-denied": "OAUTH_ACCESS_DENIED",  # the spelling of Salesforce's own web-flow example
}
# On the SMTP side, network failures have their own entries.
SMTP_EQUIVALENTS = {"TIMEOUT": "SMTP_CONNECTION", "CONNECTION_ERROR": "SMTP_CONNECTION",
                    "TLS_ERROR": "SMTP_TLS", "UNKNOWN": "SMTP_ERROR"}

_SF_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
_OAUTH_CODE = re.compile(r"^[a-z][a-z_]{1,63}$")


def entry_for(code: str | None) -> CatalogueEntry:
    """The catalogue entry for ``code``; an alias gives its target's entry, an unknown code a
    generic entry carrying that code."""
    code = code or "UNKNOWN"
    entry = CATALOGUE.get(code) or CATALOGUE.get(ALIASES.get(code, ""))
    if entry is not None:
        return entry
    generic = CATALOGUE["UNKNOWN"]
    safe = clean_text(code, 64)
    return dataclasses.replace(
        generic, code=safe,
        message_ja=f"予期しないエラーが発生しました（{safe}）。",
        message_en=f"An unexpected error occurred ({safe}).",
    )


def normalize_code(code: Any) -> str:
    """A catalogue code for a raw Salesforce/OAuth/HTTP code (str or int status)."""
    if isinstance(code, int) and not isinstance(code, bool):
        return _code_for_status(code)
    if not isinstance(code, str) or not code:
        return "UNKNOWN"
    code = code.strip()
    if code in CATALOGUE:
        return code
    if code in ALIASES:
        return ALIASES[code]
    if code.startswith("sf:"):
        return normalize_code(code[3:])
    if _SF_CODE.match(code):
        return code  # a genuine Salesforce code without an entry: kept verbatim, generic texts
    if _OAUTH_CODE.match(code):
        return "OAUTH_ERROR"
    return "UNKNOWN"


def _code_for_status(status: int) -> str:
    if status >= 500:
        return "SERVER_ERROR"
    return {400: "MALFORMED_QUERY", 401: "INVALID_SESSION_ID", 403: "INSUFFICIENT_ACCESS",
            404: "NOT_FOUND", 414: "MALFORMED_QUERY", 431: "MALFORMED_QUERY"}.get(status, "UNKNOWN")


# ---------------------------------------------------------------------------------------------
# scrubbing
# ---------------------------------------------------------------------------------------------

_SECRET_PATTERNS = [
    # Salesforce session ids and OAuth access tokens: 00D<org id>!<token>
    (re.compile(r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._\-]+"), "[session id removed]"),
    (re.compile(r"(?i)\bBearer\s+[^\s'\",;}<]+"), "Bearer [removed]"),
    (re.compile(r"(?is)<((?:\w+:)?(?:password|sessionId))>.*?</\1>"), r"<\1>[removed]</\1>"),
    (re.compile(
        r"(?i)([\"']?\b(?:access_token|refresh_token|id_token|password|passwd|security_token|"
        r"client_secret|session_?id|sid|code_verifier|authorization)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\"'&\s,;}<]+"), r"\1[removed]"),
]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def scrub(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` without anything that looks like a credential: session ids ("00D...!..."),
    Bearer tokens, password/token fields in XML, JSON, query strings, and the literal
    ``secrets`` given (those of at least 4 characters)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "[removed]")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def clean_text(text: str, limit: int = DETAIL_MAX) -> str:
    """``text`` with line breaks and tabs turned into spaces, other control characters removed,
    cut to ``limit`` characters."""
    text = re.sub(r"[\r\n\t]+", " ", str(text))
    text = _CONTROL.sub("", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


# ---------------------------------------------------------------------------------------------
# describing an exception
# ---------------------------------------------------------------------------------------------


def _content_code(content: Any) -> str | None:
    """The errorCode (REST), error (OAuth) or sf:exceptionCode (SOAP) in a response body."""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if isinstance(content, str):
        match = re.search(r"<sf:exceptionCode>([^<]+)</sf:exceptionCode>", content)
        if match:
            return match.group(1)
        try:
            content = json.loads(content)
        except ValueError:
            return None
    if isinstance(content, list) and content and isinstance(content[0], dict):
        content = content[0]
    if isinstance(content, dict):
        value = content.get("errorCode") or content.get("error")
        return value if isinstance(value, str) else None
    return None


def _salesforce_code(exc: Exception) -> str | None:
    if isinstance(exc, sfx.SalesforceAuthenticationFailed):
        if isinstance(exc.code, str) and exc.code:
            return normalize_code(exc.code)
        # an HTTP status as the code: the body's own code says more
        raw = _content_code(exc.content)
        if raw:
            return normalize_code(raw)
        is_status = isinstance(exc.code, int) and not isinstance(exc.code, bool)
        return normalize_code(exc.code) if is_status else "UNKNOWN"
    if isinstance(exc, sfx.SalesforceError):
        raw = _content_code(getattr(exc, "content", None))
        status = getattr(exc, "status", None)
        if isinstance(status, int) and status >= 500:
            return "SERVER_ERROR" if raw in (None, "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION") \
                else normalize_code(raw)
        if raw:
            return normalize_code(raw)
        return _code_for_status(status) if isinstance(status, int) else "UNKNOWN"
    return None


def _requests_code(exc: Exception) -> str | None:
    rex = requests.exceptions
    if isinstance(exc, rex.SSLError):
        return "TLS_ERROR"
    if isinstance(exc, rex.Timeout):
        return "TIMEOUT"
    # not JSON (a web page, a cut answer), or a body that ended before its promised length
    if isinstance(exc, (rex.InvalidJSONError, rex.ChunkedEncodingError, rex.ContentDecodingError)):
        return "BAD_RESPONSE"
    if isinstance(exc, rex.ConnectionError):
        text = str(exc)
        if "SSL" in text or "CERTIFICATE" in text.upper():
            return "TLS_ERROR"
        if "timed out" in text.lower():
            return "TIMEOUT"
        return "CONNECTION_ERROR"
    if isinstance(exc, rex.HTTPError) and exc.response is not None:
        response = exc.response
        try:
            raw = _content_code(response.content)
        except Exception:
            raw = None
        return normalize_code(raw) if raw else _code_for_status(response.status_code)
    return None


def _smtp_code(exc: Exception) -> str | None:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "SMTP_AUTH"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "SMTP_RECIPIENTS_REFUSED"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "SMTP_SENDER_REFUSED"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        text = str(exc).upper()
        return "SMTP_TLS" if "STARTTLS" in text else "SMTP_AUTH" if "AUTH" in text else "SMTP_ERROR"
    if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected)):
        return "SMTP_CONNECTION"
    if isinstance(exc, smtplib.SMTPException):
        return "SMTP_ERROR"
    return None


_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ECONNRESET,
                   errno.ECONNABORTED, errno.EADDRNOTAVAIL, errno.ENETDOWN, errno.EPIPE}


def _builtin_code(exc: BaseException) -> str | None:
    if isinstance(exc, ssl.SSLError):  # ssl.CertificateError included
        return "TLS_ERROR"
    if isinstance(exc, TimeoutError):
        return "TIMEOUT"
    if isinstance(exc, ConnectionError):
        return "CONNECTION_ERROR"
    if isinstance(exc, OSError):
        if "CA certificate bundle" in str(exc):
            return "TLS_ERROR"  # requests: the configured CA bundle path does not exist
        if isinstance(exc, socket.gaierror) or exc.errno in _NETWORK_ERRNOS:
            return "CONNECTION_ERROR"
    return None


def _code_of(exc: BaseException) -> str:
    own = getattr(exc, "code", None)
    if isinstance(own, str) and (own in CATALOGUE or own in ALIASES or _SF_CODE.match(own)):
        return normalize_code(own)  # our own exceptions carry the code of the fault
    if isinstance(exc, Exception):
        for probe in (_salesforce_code, _smtp_code, _requests_code):
            code = probe(exc)
            if code:
                return code
    return _builtin_code(exc) or "UNKNOWN"


def describe_failure(exc: BaseException, integration: str | None = None) -> tuple[str, str]:
    """``(code, detail)`` for an exception from simple-salesforce, requests, ssl, smtplib or our
    own modules (anything whose ``.code`` is a catalogue code).

    The detail is ``"ExceptionClass: text"`` scrubbed of session ids, tokens and passwords, with
    control characters removed and at most 2,000 characters. When the exception itself is not
    recognised, its ``__cause__`` / ``__context__`` chain is tried. With ``integration="smtp"``,
    network codes become their SMTP equivalents. Never raises.
    """
    code, seen, current = "UNKNOWN", set(), exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        try:
            code = _code_of(current)
        except Exception:  # a broken exception object must not break error reporting
            code = "UNKNOWN"
        if code != "UNKNOWN":
            break
        current = current.__cause__ or current.__context__
    if integration == "smtp":
        code = SMTP_EQUIVALENTS.get(code, code)
    return code, _detail_of(exc)


def _detail_of(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "(unprintable)"
    name = type(exc).__name__
    return clean_text(scrub(f"{name}: {text}" if text else name, secrets))


# ---------------------------------------------------------------------------------------------
# the error log
# ---------------------------------------------------------------------------------------------

def _known_secrets(store) -> tuple[str, ...]:
    try:
        settings = load_settings(store)
        return tuple(getattr(settings, name) for name in SECRET_FIELDS if getattr(settings, name))
    except Exception:
        return ()


def record_failure(store, integration: str, operation: str, exc_or_code: BaseException | str,
                   detail: str | None = None, call_id: str | None = None,
                   count: int = 1) -> CatalogueEntry:
    """Log a failure (``count`` occurrences of it at once); returns its catalogue entry.

    ``exc_or_code`` is an exception (described by :func:`describe_failure`) or a code. One row
    per open incident ``(integration, operation, code)``: a repeat raises ``count`` and
    ``last_at`` and keeps the latest detail and call id, atomically across threads and
    processes. The detail is scrubbed of secrets (including the stored ones) and cut to 2,000
    characters.

    :raises Exception: one of ``store.unavailable`` when the database cannot take the write
        (SQLite locked beyond the busy timeout, PostgreSQL unreachable)
    """
    if isinstance(exc_or_code, BaseException):
        code, described = describe_failure(exc_or_code, integration)
        detail = f"{detail}: {described}" if detail else described
    else:
        code = normalize_code(exc_or_code)
        if integration == "smtp":
            code = SMTP_EQUIVALENTS.get(code, code)
    entry = entry_for(code)
    detail = clean_text(scrub(detail or "", _known_secrets(store)))
    now = now_iso()
    with store.transaction() as db:
        db.execute(
            "INSERT INTO error_log (first_at, last_at, integration, operation, code, message, "
            "detail, call_id, count, open) VALUES (:now, :now, :integration, :operation, :code, "
            ":message, :detail, :call_id, :count, 1) "
            "ON CONFLICT (integration, operation, code) WHERE open = 1 DO UPDATE SET "
            "count = error_log.count + excluded.count, last_at = excluded.last_at, detail = excluded.detail, "
            "call_id = coalesce(excluded.call_id, error_log.call_id)",
            {"now": now, "integration": integration, "operation": operation, "code": entry.code,
             "message": entry.message_en, "detail": detail, "call_id": call_id,
             "count": max(1, int(count))},
        )
    return entry


def integration_of(exc: BaseException, expected: str = "salesforce") -> str:
    """Whose failure ``exc`` is: "salesforce" or "smtp" when it came from talking to that
    integration, else "plugin" (a fault of our own code).

    An exception declares its integration with a class attribute ``integration`` (our Salesforce
    and OAuth errors do); simple-salesforce and requests failures are Salesforce's, smtplib's are
    SMTP's; a network, TLS or timeout error belongs to the ``expected`` integration, the one the
    caller was talking to. The ``__cause__``/``__context__`` chain is searched too.
    """
    seen, current = set(), exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        declared = getattr(type(current), "integration", None)
        if declared in INTEGRATIONS:
            return declared
        if isinstance(current, (sfx.SalesforceError, requests.RequestException)):
            return "salesforce"
        if isinstance(current, smtplib.SMTPException):
            return "smtp"
        if isinstance(current, (OSError, ssl.SSLError, TimeoutError)):
            return expected
        current = current.__cause__ or current.__context__
    return "plugin"


def report_failure(store, operation: str, exc_or_code: BaseException | str, *,
                   expected: str = "salesforce", detail: str | None = None,
                   call_id: str | None = None) -> CatalogueEntry:
    """The one failure path: log ``exc_or_code`` under the integration it belongs to
    (:func:`integration_of`; a bare code belongs to ``expected``) and return its catalogue
    entry. Never raises: when the error log itself cannot be written, that is logged and the
    entry is still returned."""
    try:
        integration = expected if isinstance(exc_or_code, str) else integration_of(exc_or_code, expected)
        return record_failure(store, integration, operation, exc_or_code, detail, call_id)
    except Exception:
        log.exception("cannot write the error log (%s)", operation)
        try:
            code = exc_or_code if isinstance(exc_or_code, str) else describe_failure(exc_or_code)[0]
            return entry_for(normalize_code(code))
        except Exception:
            return CATALOGUE["UNKNOWN"]


def close_salesforce_incidents(store, screens_in_time: bool = False) -> None:
    """Salesforce answered the plugin: close its open Salesforce incidents (one cheap read when
    nothing is open). An answer says nothing about its speed, so late screens (``SCREEN_LATE``)
    stay open unless ``screens_in_time`` (screens are answered within the budget again)."""
    keep = () if screens_in_time else (SCREEN_LATE,)
    marks = ", ".join("?" for _ in SALESFORCE_OPERATIONS)
    kept = " AND code != ?" if keep else ""
    found = store.conn.execute(
        f"SELECT 1 FROM error_log WHERE integration = 'salesforce' AND open = 1 AND operation IN ({marks})"
        f"{kept} LIMIT 1", [*SALESFORCE_OPERATIONS, *keep]).fetchone()
    if found:
        for operation in SALESFORCE_OPERATIONS:
            record_recovery(store, "salesforce", operation, keep_codes=keep)


def record_late_screens(store, screens: int, budget_ms: int, call_id: str | None = None) -> None:
    """Log ``screens`` screens that ran out of their ``budget_ms`` waiting for Salesforce (one
    ``SCREEN_LATE`` incident counting them). Never raises."""
    try:
        record_failure(store, "salesforce", "lookup", SCREEN_LATE,
                       detail=f"no answer from Salesforce within the screen budget of {budget_ms} ms",
                       call_id=call_id, count=screens)
    except Exception:
        log.exception("cannot write the error log (late screens)")


def open_incident_kinds(store, quiet_integrations: tuple[str, ...] = (),
                        quiet_operations: tuple[str, ...] = ()) -> dict[str, dict]:
    """``{"integration:code": incident}`` for every kind of failure with an open incident,
    leaving out ``quiet_integrations`` and ``quiet_operations``; each incident sums its rows
    (integration, code, first_at, last_at, count, detail)."""
    where = "open = 1"
    if quiet_integrations:
        where += f" AND integration NOT IN ({', '.join('?' for _ in quiet_integrations)})"
    if quiet_operations:
        where += f" AND operation NOT IN ({', '.join('?' for _ in quiet_operations)})"
    rows = store.db.query(
        "SELECT integration, code, min(first_at) AS first_at, max(last_at) AS last_at, "
        f"CAST(sum(count) AS BIGINT) AS count, max(detail) AS detail FROM error_log WHERE {where} "
        "GROUP BY integration, code", list(quiet_integrations) + list(quiet_operations),
    )
    return {f"{row['integration']}:{row['code']}": row for row in rows}


def record_recovery(store, integration: str, operation: str | None = None,
                    keep_codes: tuple[str, ...] = ()) -> list[dict]:
    """Close the open incidents of ``integration`` (only ``operation``'s when given, none of
    ``keep_codes``); returns the closed rows (empty when nothing was open)."""
    now = now_iso()
    where, params = "integration = ? AND open = 1", [now, now, integration]
    if operation is not None:
        where += " AND operation = ?"
        params.append(operation)
    if keep_codes:
        where += f" AND code NOT IN ({', '.join('?' for _ in keep_codes)})"
        params += list(keep_codes)
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE error_log SET open = 0, "
            f"last_at = CASE WHEN last_at > ? THEN last_at ELSE ? END WHERE {where} "
            "RETURNING id, integration, operation, code, count, first_at, last_at", params,
        )
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _filters(integration=None, code=None, day=None, open=None) -> tuple[str, dict]:
    clauses, params = [], {}
    if integration:
        clauses.append("integration = :integration")
        params["integration"] = integration
    if code:
        clauses.append("code = :code")
        params["code"] = code
    if day:
        day = day.isoformat() if isinstance(day, dt.date) else str(day)
        # incidents active that (UTC) day
        clauses.append("first_at < :day_end AND last_at >= :day_start")
        params["day_start"], params["day_end"] = day, _next_day(day)
    if open is not None:
        clauses.append("open = :open")
        params["open"] = int(bool(open))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _next_day(day: str) -> str:
    try:
        return (dt.date.fromisoformat(day[:10]) + dt.timedelta(days=1)).isoformat()
    except ValueError:
        return day


def list_errors(store, integration: str | None = None, code: str | None = None,
                day: str | dt.date | None = None, limit: int = 50, offset: int = 0,
                open: bool | None = None) -> list[dict]:
    """Error-log rows, newest (``last_at``) first, each with the catalogue texts added
    (``message_ja``, ``message_en``, ``remedy_ja``, ``remedy_en``). ``day`` (YYYY-MM-DD, UTC)
    keeps incidents active that day; ``open`` keeps open (True) or closed (False) ones."""
    where, params = _filters(integration, code, day, open)
    params.update(limit=int(limit), offset=int(offset))
    rows = store.db.query(
        f"SELECT * FROM error_log{where} ORDER BY last_at DESC, id DESC LIMIT :limit OFFSET :offset",
        params,
    )
    return [_with_texts(row) for row in rows]


def count_errors(store, integration: str | None = None, code: str | None = None,
                 day: str | dt.date | None = None, open: bool | None = None) -> int:
    """How many rows :func:`list_errors` pages through with the same filters."""
    where, params = _filters(integration, code, day, open)
    return store.conn.execute(f"SELECT count(*) FROM error_log{where}", params).fetchone()[0]


def codes_in_log(store) -> list[str]:
    """The distinct codes present in the error log (for a filter menu)."""
    return [r[0] for r in store.conn.execute("SELECT DISTINCT code FROM error_log ORDER BY code")]


def _with_texts(row: dict) -> dict:
    entry = entry_for(row.get("code"))
    row.update(message_ja=entry.message_ja, message_en=entry.message_en,
               remedy_ja=entry.remedy_ja, remedy_en=entry.remedy_en)
    return row
