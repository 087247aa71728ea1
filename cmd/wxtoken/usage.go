package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const usageText = `wxtoken obtains, caches and prints the access_token of a WeChat Official Account.

Usage:
  wxtoken get [flags]    print a valid access_token on stdout, and nothing else
  wxtoken check [flags]  verify the AppSecret and the saved token, replacing none
  wxtoken quota [flags] [PATH...]
                         print the daily quota of APIs (default /cgi-bin/token)
  wxtoken clear-quota [flags]
                         reset the account's daily quotas; no token needed, works
                         after 45009; WeChat allows 10 a month, so it asks first
  wxtoken serve --config FILE [--check]
                         the central token server: hands the credentials FILE names
                         to the clients it names, over HTTP (--check: validate FILE)
  wxtoken keygen         print a new client key for serve, and the hash for FILE
  wxtoken demo           show what the library does, against a fake WeChat in this process
  wxtoken version        print the version
  wxtoken help           print this help

Flags of get, check, quota and clear-quota:
  --appid ID          the account's appid (default: $WECHAT_APPID)
  --secret-file PATH  read the account's AppSecret from the file PATH (recommended;
                      keep it mode 0600)
  --secret-stdin      read the AppSecret from standard input (recommended)
  --secret SECRET     the AppSecret itself; avoid it: other users can read a flag
                      in ps (default: $WECHAT_APPSECRET)
  --stable            use POST /cgi-bin/stable_token instead of GET /cgi-bin/token
  --base-url URL      the WeChat API origin (default: https://api.weixin.qq.com)
  --store-dir DIR     the folder keeping the token file, <appid>.json
                      (default: %s)
  --redis URL         keep the token in the fleet's Redis instead, and share it:
                      redis://[:password@]host:6379/0 (rediss:// for TLS),
                      redis+cluster://host:port?addr=host2:port,
                      redis+sentinel://host:26379/0?master=NAME&addr=host2:26379
  --redis-prefix P    the prefix of the fleet's Redis keys (default: wxtoken:)
  --store-key KEY     the key the token is kept under (default: <appid>, or
                      <appid>.stable with --stable): the one the services use
  --no-store          keep nothing: fetch a token that supersedes the one other
                      processes of the account use. Without a store get refuses
  --timeout D         give up after D, such as 10s or 1m (default: 30s)
  --verbose           log what the library does on stderr
  --fresh             get: try the saved token with getcallbackip, replace it if
                      WeChat rejects it, and say on stderr what was done
  --json              get, quota: print JSON, such as {"access_token":"...",
                      "expires_at":"...","expires_in":7000,"source":"cache"}
                      (source: cache = a file, store = Redis, wechat = fetched now)
  --yes               clear-quota: do not ask for confirmation

Flags of demo:
  --verbose           log what the library does on stderr

Environment:
  WECHAT_APPID      the appid, when --appid is not given
  WECHAT_APPSECRET  the AppSecret, when no --secret flag is given

The token is printed alone, so it can be used inline:

  export WECHAT_APPID=wx... WECHAT_APPSECRET=...
  curl "https://api.weixin.qq.com/cgi-bin/menu/get?access_token=$(wxtoken get)"

Or keep the AppSecret in a file (mode 0600) or a password manager:

  wxtoken get --appid wx... --secret-file ~/.config/wechat/appsecret
  pass show wechat/appsecret | wxtoken get --appid wx... --secret-stdin

Runs share the token file (or the Redis): WeChat is asked again only when the
saved token has less than 4 minutes left, and never when the store cannot be
read. Errors go to stderr, never with the secret, and the
command line is never repeated in them (a misplaced argument may be the secret).
Exit status: 0 success, 1 failure, 2 wrong command line.
`

func (c *cli) printUsage(w io.Writer) {
	fmt.Fprintf(w, usageText, defaultStoreDir())
}

// defaultStoreDir names the folder the library's default FileStore uses, as
// the help shows it; the library itself decides, since get passes no store.
func defaultStoreDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "the user cache folder/wxtoken"
	}
	return filepath.Join(dir, "wxtoken")
}
