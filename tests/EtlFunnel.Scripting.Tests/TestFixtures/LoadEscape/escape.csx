// Tries to pull in a file from outside the hooks folder.
#load "../Seed/flow-by-cores.csx" // expect: EF1001
