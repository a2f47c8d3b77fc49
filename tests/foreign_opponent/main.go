// A rock-paper-scissors player written by someone else, for tests/test_watch.py: four
// goroutines print bare move words with fmt.Println, after a short delay, paced.
//
// usage: rock-paper-scissors MOVES_PER_GOROUTINE DELAY_MS INTERVAL_US
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: rock-paper-scissors MOVES_PER_GOROUTINE DELAY_MS INTERVAL_US")
		os.Exit(2)
	}
	moves, _ := strconv.Atoi(os.Args[1])
	delay, _ := strconv.Atoi(os.Args[2])
	interval, _ := strconv.Atoi(os.Args[3])
	words := []string{"Rock", "paper", "SCISSORS"}
	time.Sleep(time.Duration(delay) * time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < moves; i++ {
				fmt.Println(words[(g+i)%3])
				time.Sleep(time.Duration(interval) * time.Microsecond)
			}
		}(g)
	}
	wg.Wait()
	fmt.Println("good game!")
}
