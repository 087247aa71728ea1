package wxtoken

import "golang.org/x/sys/unix"

// openNoATime keeps reading a record from updating its access time: with
// relatime, the default, the first read after each save would, and that
// write to the inode waits for the journal that every concurrent save is
// committing. The kernel allows it only for the owner of the file (or with
// CAP_FOWNER), so a refused open is tried again without it.
const openNoATime = unix.O_NOATIME
