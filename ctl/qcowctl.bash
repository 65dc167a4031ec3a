# bash completion for qcowctl(8)                                 -*- shell-script -*-
#
# Completes commands, options and their values, file names for images, and
# the names of attached images (asked of qcowd with `qcowctl --json list`,
# quietly and with a short timeout, on the socket the command line names).
# Installed as $(datadir)/bash-completion/completions/qcowctl.

_qcowctl_commands="create info map check convert read write discard compact
attach detach list query stats pause resume limit events version shutdown export help"

_qcowctl_global_opts="--json --quiet -q --verbose -v --help -h --version -V --socket --timeout"

# The options of one command (besides the ones every command takes).
_qcowctl_command_opts()
{
    local common="--json --quiet -q --verbose -v --help -h"
    local online="--socket --timeout"
    local limits="--iops --iops-read --iops-write --bps --bps-read --bps-write --iops-burst
                --bps-burst --burst-length --iops-size --limit-group --limit"
    case $1 in
        create) echo "$common --format -f --backing -b --backing-format -F --cluster-size
                --l2-bits --encrypt --key-file --xen-header --xen-extent-alloc --no-sparse
                --preallocation" ;;
        info|map|read) echo "$common --format -f --key-file" ;;
        write) echo "$common --format -f --key-file --pattern" ;;
        check) echo "$common --repair -r" ;;
        discard) echo "$common --format -f" ;;
        compact) echo "$common" ;;
        convert) echo "$common --compress -c --format -f --output-format -O --key-file
                 --target-key-file --cluster-size" ;;
        attach) echo "$common $online --name -n --read-only -r --cache --format -f --key-file
                --poll-us --ring-page-order --data-pages $limits" ;;
        limit) echo "$common $online $limits --reset" ;;
        stats) echo "$common $online --watch -w --interval -i --count -c" ;;
        shutdown) echo "$common $online --no-wait" ;;
        export) echo "$common $online --nbd --tls-certs --read-only -r --insecure" ;;
        detach|list|query|pause|resume|events|version) echo "$common $online" ;;
    esac
}

# Complete file names in $cur.
_qcowctl_files()
{
    if declare -F _filedir >/dev/null 2>&1; then
        _filedir
    else
        local IFS=$'\n'
        compopt -o filenames 2>/dev/null || true
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

# The names of the attached images, from the daemon the command line talks
# to (nothing when none answers quickly).
_qcowctl_names()
{
    local prog=$1 sock=$2 out
    local -a cmd=("$prog" --timeout 2)

    [[ -n $sock ]] && cmd+=(--socket "$sock")
    cmd+=(--json list)
    if command -v timeout >/dev/null 2>&1; then
        out=$(timeout 3 "${cmd[@]}" 2>/dev/null </dev/null) || return 0
    else
        out=$("${cmd[@]}" 2>/dev/null </dev/null) || return 0
    fi
    # Pretty JSON, one member per line: "name": "...".  Names are made of
    # A-Z a-z 0-9 . _ - only.
    printf '%s\n' "$out" | sed -n 's/^ *"name": *"\([A-Za-z0-9._-]*\)".*/\1/p'
}

_qcowctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev= cword=$COMP_CWORD
    local -a words=("${COMP_WORDS[@]}")
    local i w command= command_at=0 sock= operands=0

    COMPREPLY=()
    (( cword > 0 )) && prev=${words[cword-1]}
    # --opt=value is split by COMP_WORDBREAKS into --opt, =, value.
    if [[ $cur == = ]]; then
        prev=${words[cword-1]}
        cur=
    elif [[ $prev == = ]] && (( cword > 1 )); then
        prev=${words[cword-2]}
    fi

    # Find the command, the socket, and how many operands come before $cur.
    for (( i = 1; i < cword; i++ )); do
        w=${words[i]}
        case $w in
            =) continue ;;
            --socket|--timeout|--format|-f|--backing|-b|--backing-format|-F|--cluster-size|\
            --l2-bits|--key-file|--preallocation|--output-format|-O|--target-key-file|\
            --pattern|--name|-n|--cache|--interval|-i|--poll-us|--ring-page-order|\
            --data-pages|--nbd|--tls-certs|\
            --iops|--iops-read|--iops-write|--bps|--bps-read|--bps-write|--iops-burst|\
            --bps-burst|--burst-length|--iops-size|--limit-group|--limit)
                [[ $w == --socket ]] && sock=${words[i+1]}
                [[ ${words[i+1]} == = ]] && { (( i++ )); [[ $w == --socket ]] && sock=${words[i+1]}; }
                (( i + 1 < cword )) && (( i++ ))
                continue ;;
            -c|--count)
                # stats --count N; convert -c takes no value.
                if [[ $command == stats ]]; then
                    (( i + 1 < cword )) && (( i++ ))
                fi
                continue ;;
            --socket=*) sock=${w#--socket=}; continue ;;
            -*) continue ;;
        esac
        if [[ -z $command ]]; then
            command=$w
            command_at=$i
        else
            (( operands++ ))
        fi
    done
    # A ~ at the start of the socket path, as the shell would expand it.
    [[ $sock == "~/"* ]] && sock=$HOME/${sock#"~/"}

    # The value of an option.
    case $prev in
        --socket|--key-file|--target-key-file|--backing|-b|--tls-certs)
            _qcowctl_files
            return 0 ;;
        --nbd)
            COMPREPLY=($(compgen -W "unix: tcp:" -- "$cur"))
            compopt -o nospace 2>/dev/null || true
            return 0 ;;
        --format|-f)
            if [[ $command == attach ]]; then
                COMPREPLY=($(compgen -W "auto qcow raw" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "qcow raw" -- "$cur"))
            fi
            return 0 ;;
        --backing-format|-F|--output-format|-O)
            COMPREPLY=($(compgen -W "qcow raw" -- "$cur"))
            return 0 ;;
        --cache)
            COMPREPLY=($(compgen -W "none writeback" -- "$cur"))
            return 0 ;;
        --preallocation)
            COMPREPLY=($(compgen -W "off metadata full" -- "$cur"))
            return 0 ;;
        --timeout|--cluster-size|--l2-bits|--pattern|--name|-n|--interval|-i|--count|\
        --poll-us|--ring-page-order|--data-pages)
            return 0 ;;
        --iops|--iops-read|--iops-write|--bps|--bps-read|--bps-write|--iops-burst|--bps-burst|\
        --burst-length|--iops-size|--limit-group|--limit)
            return 0 ;;
        -c)
            [[ $command == stats ]] && return 0 ;;
    esac

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$_qcowctl_global_opts" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_qcowctl_commands" -- "$cur"))
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_qcowctl_command_opts "$command")" -- "$cur"))
        return 0
    fi
    case $command in
        help)
            (( operands == 0 )) && COMPREPLY=($(compgen -W "$_qcowctl_commands" -- "$cur")) ;;
        attach)
            (( operands == 0 )) && _qcowctl_files ;;
        create|info|map|check|read|write|discard|compact)
            (( operands == 0 )) && _qcowctl_files ;;
        convert)
            (( operands < 2 )) && _qcowctl_files ;;
        export)
            if (( operands == 0 )); then
                COMPREPLY=($(compgen -W "add list remove" -- "$cur"))
            elif (( operands == 1 )) && [[ ${words[command_at+1]} == add || ${words[command_at+1]} == remove ]]; then
                COMPREPLY=($(compgen -W "$(_qcowctl_names "${words[0]}" "$sock")" -- "$cur"))
            fi ;;
        detach|query|stats|pause|resume|limit)
            (( operands == 0 )) &&
                COMPREPLY=($(compgen -W "$(_qcowctl_names "${words[0]}" "$sock")" -- "$cur")) ;;
    esac
    return 0
}

complete -F _qcowctl qcowctl
