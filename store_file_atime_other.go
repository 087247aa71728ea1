//go:build unix && !linux

package wxtoken

// openNoATime is Linux's O_NOATIME; elsewhere reads may update access times.
const openNoATime = 0
