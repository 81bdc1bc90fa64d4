# pw.fish -- fish completion for pw(1).
#
# Nothing here lists a command or an option: they (fetch, pool, config,
# health, cache, serve and the rest) come from the binary being
# completed ("pw __dump"), config keys from "pw config list" and
# proxy ids from "pw pool ls", so the completion cannot drift from it.
# Only the fixed choices of a few option values are spelt out below;
# tests/cli/docs.bats checks them against the binary.

# __pw_children PARENT: "name<TAB>summary" of the commands one level
# below PARENT ("" for the top), from the table in __pw_cmd_path/help.
function __pw_children
    for i in (seq (count $__pw_cmd_path))
        set -l p $__pw_cmd_path[$i]
        if test -z "$argv[1]"
            string match -q -- '* *' $p
            or printf '%s\t%s\n' $p $__pw_cmd_help[$i]
        else if string match -q -- "$argv[1] *" $p
            set -l rest (string replace -- "$argv[1] " '' $p)
            string match -q -- '* *' $rest
            or printf '%s\t%s\n' $rest $__pw_cmd_help[$i]
        end
    end
end

# __pw_resolve PARENT WORD: the child named WORD, or the only one it is a
# prefix of (as pw resolves "pw po ls").
function __pw_resolve
    set -l found
    for c in (__pw_children $argv[1] | string replace -r '\t.*' '')
        if test "$c" = "$argv[2]"
            echo $c
            return 0
        end
        if test -n "$argv[2]"; and string match -q -- "$argv[2]*" $c
            set -a found $c
        end
    end
    test (count $found) -eq 1; and echo $found
end

# __pw_opt PATH WORD: the index of option WORD (long or short) of PATH.
function __pw_opt
    for i in (seq (count $__pw_opt_path))
        test "$__pw_opt_path[$i]" = "$argv[1]"; or continue
        if test "$argv[2]" = "$__pw_opt_long[$i]"
            echo $i
            return 0
        end
        if test -n "$__pw_opt_short[$i]"
            and test "$argv[2]" = "$__pw_opt_short[$i]"
            echo $i
            return 0
        end
    end
    return 1
end

function __pw_ids
    $__pw_bin $__pw_state pool ls --plain 2>/dev/null |
        string replace -r '^([^\t]*)\t([^\t]*).*' '$1\t$2'
end

function __pw_keys
    $__pw_bin $__pw_state config list --plain 2>/dev/null |
        string replace -r '^([^\t]*)\t([^\t]*)\t([^\t]*).*' '$1\t$2 ($3)'
end

# __pw_key_values KEY CUR: the values of a setting with fixed choices.
function __pw_key_values
    switch $argv[1]
        case strategy
            printf '%s\n' round-robin random weighted least-used performance \
                sticky geo
        case session.strategy geo.strategy
            printf '%s\n' round-robin random weighted least-used performance
        case strategy.fallback
            printf '%s\n' none round-robin random weighted least-used
        case geo.fallback
            printf '%s\n' true false
        case strategy.plugins
            __fish_complete_path $argv[2]
    end
end

# __pw_option_values LONG CUR: the values of an option's argument.
function __pw_option_values
    switch $argv[1]
        case --status
            printf '%s\n' unknown healthy degraded unhealthy pending
        case --scheme
            printf '%s\n' http https socks4 socks4a socks5 socks5h
        case --anonymity
            printf '%s\n' transparent anonymous elite
        case --strategy
            printf '%s\n' round-robin random weighted least-used performance \
                sticky geo
        case --format
            switch "$argv[3]"
                case 'cache warm'
                    printf '%s\n' auto txt csv json jsonl
                case 'cache export'
                    printf '%s\n' jsonl json csv txt
                case 'cache stats'
                    printf '%s\n' text json prometheus
                case '*'
                    printf '%s\n' url json
            end
        case --mode
            printf '%s\n' get connect
        case --exclude
            __pw_ids
        case --request
            printf '%s\n' GET HEAD POST PUT PATCH DELETE OPTIONS
        case --state --strategy-plugin --output --cacert
            __fish_complete_path $argv[2]
        case --config
            if string match -q -- '*=*' $argv[2]
                set -l key (string replace -r '=.*' '' -- $argv[2])
                set -l val (string replace -r '^[^=]*=' '' -- $argv[2])
                __pw_key_values $key $val | string replace -r -- '^' "$key="
            else
                __pw_keys | string replace -r '^([^\t]*)' '$1='
            end
    end
end

# __pw_positional PATH N CUR: the Nth (from 0) argument of PATH.
function __pw_positional
    switch "$argv[1]:$argv[2]"
        case 'pool rm:*' 'pool show:0' 'pool set:0' 'pool report:0'
            __pw_ids
        case 'config get:0' 'config unset:0' 'config set:0'
            __pw_keys
        case 'config set:1'
            __pw_key_values $__pw_arg0 $argv[3]
        case 'pool report:1'
            printf '%s\n' ok fail
        case 'help:0'
            __pw_children ''
        case 'help:1'
            set -l c (__pw_resolve '' $__pw_arg0)
            test -n "$c"; and __pw_children $c
    end
end

function __pw_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -g __pw_bin $tokens[1]
    set -g __pw_state
    set -g __pw_arg0
    set -g __pw_cmd_path
    set -g __pw_cmd_help
    set -g __pw_opt_path
    set -g __pw_opt_long
    set -g __pw_opt_short
    set -g __pw_opt_arg
    set -g __pw_opt_help
    for line in ($__pw_bin __dump 2>/dev/null | tr -d '\000')
        set -l f (string split \t -- $line)
        switch $f[1]
            case command
                set -a __pw_cmd_path $f[2]
                set -a __pw_cmd_help $f[3]
            case option
                set -a __pw_opt_path $f[2]
                set -a __pw_opt_long $f[3]
                set -a __pw_opt_short (string trim -- $f[4])
                set -a __pw_opt_arg $f[5]
                set -a __pw_opt_help $f[6]
        end
    end
    test (count $__pw_cmd_path) -gt 0; or return

    # Walk the words before the cursor: global options, the command,
    # its verb, then its options and arguments.
    set -l cmd
    set -l want
    set -l only
    set -l n 0
    for w in $tokens[2..-1]
        if test -n "$want"
            test "$want" = --state; and set __pw_state --state $w
            set want
            continue
        end
        if test -z "$only"; and string match -q -- '-?*' $w
            if test "$w" = --
                set only 1
            else if string match -q -- '--*=*' $w
                string match -q -- '--state=*' $w
                and set __pw_state --state (string replace -- --state= '' $w)
            else if set -l i (__pw_opt "$cmd" $w)
                test -n "$__pw_opt_arg[$i]"; and set want $__pw_opt_long[$i]
            end
            continue
        end
        if test -z "$cmd"
            if test "$w" = help
                set cmd help
                continue
            end
            set cmd (__pw_resolve '' $w)
            test -n "$cmd"; or return
            continue
        end
        # Verbs, as deep as they go (serve keys add).
        if test "$cmd" != help; and test $n -eq 0
            and test -n "$(__pw_children $cmd)"
            set -l verb (__pw_resolve $cmd $w)
            test -n "$verb"; or return
            set cmd "$cmd $verb"
            continue
        end
        test $n -eq 0; and set __pw_arg0 $w
        set n (math $n + 1)
    end

    # The value of an option: "--opt VALUE" or "--opt=VALUE".
    if test -n "$want"
        __pw_option_values $want $cur $cmd
        return
    end
    if test -z "$only"; and test "$cmd" != help
        and string match -q -- '--*=*' $cur
        set -l o (string replace -r '=.*' '' -- $cur)
        set -l v (string replace -r '^[^=]*=' '' -- $cur)
        __pw_option_values $o $v $cmd | string replace -r -- '^' "$o="
        return
    end

    if test -z "$cmd"
        if string match -q -- '-*' $cur
            for i in (seq (count $__pw_opt_path))
                test -z "$__pw_opt_path[$i]"
                and printf '%s\t%s\n' $__pw_opt_long[$i] $__pw_opt_help[$i]
            end
        else
            __pw_children ''
            printf '%s\t%s\n' help 'show help for a command'
        end
        return
    end
    if test "$cmd" = help
        __pw_positional help $n $cur
        return
    end
    if test -n "$(__pw_children $cmd)"
        # The verb's place: a verb, or --help; or the options of a
        # command that runs itself too (pw serve).
        if string match -q -- '-*' $cur
            set -l found
            for i in (seq (count $__pw_opt_path))
                if test "$__pw_opt_path[$i]" = "$cmd"
                    printf '%s\t%s\n' $__pw_opt_long[$i] $__pw_opt_help[$i]
                    set found 1
                end
            end
            test -n "$found"; or printf '%s\t%s\n' --help 'show help'
        else
            __pw_children $cmd
        end
        return
    end
    if test -z "$only"; and string match -q -- '-*' $cur
        for i in (seq (count $__pw_opt_path))
            test "$__pw_opt_path[$i]" = "$cmd"
            and printf '%s\t%s\n' $__pw_opt_long[$i] $__pw_opt_help[$i]
        end
        return
    end
    __pw_positional $cmd $n $cur
end

complete -c pw -e
complete -c pw -f -a '(__pw_complete)'
