#!/usr/bin/env bash
# Why tests/test_gui.py sends a drag as one xdotool command: with the X server busy, does a button press sent by
# one xdotool process land before a pointer move sent just before it by another?
#   benchmarks/xdotool_order.sh [TRIALS]      (needs Xvfb, xdotool and xev; about 2 s per trial)
# Each trial puts the pointer at (10, 10), stops Xvfb (as a starved server would be), sends the move to
# (500, 500) and then the press, resumes Xvfb and records where the press landed (xev on the root window). The
# move and the press go once from two xdotool processes (two X connections), once from one. Prints, for each,
# how many presses landed before the move (at 10,10) and after it (at 500,500).
set -euo pipefail
trials=${1:-20}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
Xvfb :57 -screen 0 800x600x24 -nolisten tcp -noreset > /dev/null 2>&1 &
server=$!
export DISPLAY=:57
sleep 1
run() {  # $1: "two" or "one" processes
    xev -root -event button > "$work/$1.log" 2>&1 &
    local listener=$!
    sleep 0.5
    for _ in $(seq "$trials"); do
        xdotool mousemove 10 10
        sleep 0.1
        kill -STOP "$server"
        if [ "$1" = two ]; then
            xdotool mousemove 500 500 &
            sleep 0.2
            xdotool mousedown 1 &
        else
            xdotool mousemove 500 500 sleep 0.2 mousedown 1 &
        fi
        sleep 0.4
        kill -CONT "$server"
        wait $(jobs -p | grep -v -e "^$server$" -e "^$listener$")
        xdotool mouseup 1
        sleep 0.1
    done
    sleep 0.5
    kill "$listener"
    local before after
    before=$(grep -A2 ButtonPress "$work/$1.log" | grep -c "root:(10,10)" || true)
    after=$(grep -A2 ButtonPress "$work/$1.log" | grep -c "root:(500,500)" || true)
    echo "$1 xdotool process(es): $before of $trials presses before the move, $after after it"
}
run two
run one
