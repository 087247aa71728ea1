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
  wxtoken demo           show what the library does, against a fake WeChat in this process
  wxtoken version        print the version
  wxtoken help           print this help

Flags of get:
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
  --timeout D         give up after D, such as 10s or 1m (default: 30s)
  --verbose           log what the library does on stderr

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

Runs share the token file: WeChat is asked again only when the saved token has
less than 4 minutes left. Errors go to stderr, never with the secret, and the
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
