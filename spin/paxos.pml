/* The ownership Paxos of harunner (harunner/paxos), one instance, checked with Spin.

   3 acceptors, 2 proposers, 3 ballots (ballot b = (round - 1) * 2 + proposer,
   so ballots are unique and ordered as (round, slot)). Messages are modelled
   as the set of messages ever sent (as in Lamport's TLA+ Paxos): a message can
   be received at any later time, many times, or never, which covers loss,
   duplication, reordering and delay. Crash-restart: a proposer loses its
   phase and comes back with a new value (a new incarnation) and its durable
   round; an acceptor loses what it had not persisted.

   Checked: agreement (no two values chosen by a majority at any ballots),
   and that every value a proposer learns was chosen.

     spin -a paxos.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan          # no errors
     spin -DQUORUM=1 -a paxos.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan   # errors
     spin -DPERSIST_LATE -a ...   reply before persisting: errors
     spin -DFORGET_ROUND -a ...   round not reloaded after restart: errors
*/

#ifndef QUORUM
#define QUORUM 2            /* what the proposers believe a quorum is */
#endif
#define MAJORITY 2          /* what a quorum really is, for 3 acceptors */
#define NA 3
#define NB 3
#define ROUNDS 2            /* proposer 0: rounds 1, 2; proposer 1: round 1 */
#define NONE 255

typedef Row { byte x[NB] };

byte acc2a[NB];             /* value proposed in phase 2 at each ballot (0: none) */
Row acc2b[NA];              /* acc2b[a].x[b]: acceptor a sent Accepted(b) */
Row promised[NA];           /* promised[a].x[b]: acceptor a sent Promise(b) */
Row repBal[NA];             /* with that Promise: its accepted ballot (NONE: nothing) */
Row repVal[NA];             /* and value */
bool prepared[NB];          /* Prepare(b) was sent */

byte maxBal[NA], maxVBal[NA], maxVal[NA];       /* acceptor state in memory */
byte dBal[NA], dVBal[NA], dVal[NA];             /* acceptor state on disk */
byte learned = 0;

#define CHOSEN(b) (acc2b[0].x[b] + acc2b[1].x[b] + acc2b[2].x[b] >= MAJORITY)
#define AGREEMENT ( \
    (!(CHOSEN(0) && CHOSEN(1)) || acc2a[0] == acc2a[1]) && \
    (!(CHOSEN(0) && CHOSEN(2)) || acc2a[0] == acc2a[2]) && \
    (!(CHOSEN(1) && CHOSEN(2)) || acc2a[1] == acc2a[2]))

#define PERSIST(a) dBal[a] = maxBal[a]; dVBal[a] = maxVBal[a]; dVal[a] = maxVal[a]

inline count(mask, n) {
    n = (mask & 1) + ((mask >> 1) & 1) + ((mask >> 2) & 1)
}

proctype Acceptor(byte a) {
    byte b;
    do
    :: atomic {   /* Prepare(b): promise if b >= promise; persist, then reply */
        select(b : 0 .. NB - 1);
        if
        :: prepared[b] && (maxBal[a] == NONE || b >= maxBal[a]) ->
            maxBal[a] = b;
#ifndef PERSIST_LATE
            PERSIST(a);
#endif
            promised[a].x[b] = 1; repBal[a].x[b] = maxVBal[a]; repVal[a].x[b] = maxVal[a]
        :: else
        fi;
        b = 0   /* scratch variables are reset, so that they do not multiply states */
       }
    :: atomic {   /* Accept(b, v): accept if b >= promise; the promise rises to b */
        select(b : 0 .. NB - 1);
        if
        :: acc2a[b] != 0 && (maxBal[a] == NONE || b >= maxBal[a]) ->
            maxBal[a] = b; maxVBal[a] = b; maxVal[a] = acc2a[b];
#ifndef PERSIST_LATE
            PERSIST(a);
#endif
            acc2b[a].x[b] = 1
        :: else
        fi;
        b = 0
       }
#ifdef PERSIST_LATE
    :: atomic { PERSIST(a) }
#endif
    :: atomic {   /* crash and restart: memory reloaded from disk */
        maxBal[a] = dBal[a]; maxVBal[a] = dVBal[a]; maxVal[a] = dVal[a]
       }
    od
}

proctype Proposer(byte p) {
    byte round = 0, incarnation = 0, b, v, mask, n, a, best;
    byte phase = 0;         /* 0 idle, 1 preparing, 2 accepting */
    do
    :: atomic { round < ROUNDS - p ->  /* new ballot: the round is durable before Prepare */
        round++; b = (round - 1) * 2 + p; prepared[b] = 1; phase = 1
       }
    :: atomic { phase == 1 ->          /* promises from a quorum: propose */
        select(mask : 1 .. 7); count(mask, n);
        if
        :: n >= QUORUM &&
           (!(mask & 1) || promised[0].x[b]) && (!(mask & 2) || promised[1].x[b]) &&
           (!(mask & 4) || promised[2].x[b]) ->
            best = NONE; v = 1 + p * 2 + incarnation;
            for (a : 0 .. NA - 1) {
                if
                :: (mask >> a) & 1 && repBal[a].x[b] != NONE &&
                   (best == NONE || repBal[a].x[b] > best) ->
                   best = repBal[a].x[b]; v = repVal[a].x[b]
                :: else
                fi
            }
            acc2a[b] = v; phase = 2
        :: else
        fi;
        v = 0; mask = 0; n = 0; a = 0; best = 0
       }
    :: atomic { phase == 2 ->          /* accepted by a quorum: learn */
        select(mask : 1 .. 7); count(mask, n);
        if
        :: n >= QUORUM &&
           (!(mask & 1) || acc2b[0].x[b]) && (!(mask & 2) || acc2b[1].x[b]) &&
           (!(mask & 4) || acc2b[2].x[b]) ->
            assert(CHOSEN(b));
            assert(learned == 0 || learned == acc2a[b]);
            learned = acc2a[b]; phase = 0; b = 0
        :: else
        fi;
        mask = 0; n = 0
       }
    :: atomic { incarnation == 0 ->    /* crash and restart: a new incarnation */
        incarnation = 1; phase = 0; b = 0;
#ifdef FORGET_ROUND
        round = 0
#endif
       }
    od
}

active proctype Monitor() {
    atomic { !AGREEMENT -> assert(false) }
}

init {
    byte a;
    atomic {
        for (a : 0 .. NA - 1) {
            maxBal[a] = NONE; maxVBal[a] = NONE; maxVal[a] = 0;
            dBal[a] = NONE; dVBal[a] = NONE; dVal[a] = 0;
        }
        for (a : 0 .. NB - 1) {
            repBal[0].x[a] = NONE; repBal[1].x[a] = NONE; repBal[2].x[a] = NONE
        }
        run Acceptor(0); run Acceptor(1); run Acceptor(2);
        run Proposer(0); run Proposer(1)
    }
}
